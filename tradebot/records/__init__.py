"""Record keepers for the long-running loop: in-memory views of the journals that follow their
appended tails, so a tick costs the same with ten trades or a hundred thousand."""
