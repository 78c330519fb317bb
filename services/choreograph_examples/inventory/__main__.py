"""Run the inventory service until SIGTERM; settings from CHOREOGRAPH_* variables."""

from choreograph_examples.inventory.service import build

if __name__ == "__main__":
    build().run()
