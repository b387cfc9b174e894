"""Telling the outside world: systemd (`systemd`) and the operator's phone (`alerts`, Apprise)."""
