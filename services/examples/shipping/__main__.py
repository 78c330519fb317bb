"""`python -m examples.shipping worker`: the Faust worker, as the shipping team always ran it."""

from examples.shipping.app import app

if __name__ == "__main__":
    app.main()
