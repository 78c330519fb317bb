"""Bridges for teams on other stream processors; each needs its extra (`choreograph[faust]`)."""
