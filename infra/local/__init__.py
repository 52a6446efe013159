"""The local stack: moto emulator, template provisioning, gateway, pollers, scheduler, fake OpenAI."""
