"""Shadow runs: a new build of a service beside the live one, on the live inputs, writing only
to shadow topics, with its outputs compared to the live service's per key."""
