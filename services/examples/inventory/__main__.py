"""Run the inventory service until SIGTERM; settings from CHOREOGRAPH_* variables."""

from choreograph import ServiceConfig
from choreograph.observability.logs import configure_json_logging
from examples.inventory.service import build

if __name__ == "__main__":
    configure_json_logging()
    build().run(ServiceConfig.from_env())
