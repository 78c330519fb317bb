"""Team shipping: an existing Faust app, joined to the platform through the Faust bridge."""
