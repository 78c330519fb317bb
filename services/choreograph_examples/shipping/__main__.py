"""`python -m choreograph_examples.shipping worker`: the Faust worker, as the shipping team
always ran it."""

from choreograph_examples.shipping.app import app

if __name__ == "__main__":
    app.main()
