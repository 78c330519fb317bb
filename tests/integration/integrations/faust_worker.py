"""The shipping Faust app on topics a test names (FAUST_IN, FAUST_OUT, FAUST_NAME), run as
`python -m tests.integration.integrations.faust_worker worker`."""

from __future__ import annotations

import os

from choreograph_examples.shipping.app import create_app

app = create_app(
    os.environ["CHOREOGRAPH_BOOTSTRAP"],
    os.environ["CHOREOGRAPH_REGISTRY_URL"],
    os.environ["CHOREOGRAPH_STATE_DIR"],
    1,
    name=os.environ["FAUST_NAME"],
    inbound=os.environ["FAUST_IN"],
    outbound=os.environ["FAUST_OUT"],
)

if __name__ == "__main__":
    app.main()
