"""Run the orders service until SIGTERM; settings from CHOREOGRAPH_* variables."""

from choreograph_examples.orders.service import build

if __name__ == "__main__":
    build().run()
