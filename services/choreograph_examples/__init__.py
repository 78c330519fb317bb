"""Reference choreography: order fulfilment across orders, payments, inventory and shipping."""
