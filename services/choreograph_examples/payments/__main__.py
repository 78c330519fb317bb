"""Run the payments service until SIGTERM; settings from CHOREOGRAPH_* variables."""

from choreograph_examples.payments.service import build

if __name__ == "__main__":
    build().run()
