"""Admin action modules, one per resource; `chatbot.admin.app.create_app` imports every module here."""
