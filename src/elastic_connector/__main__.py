"""``python -m elastic_connector`` is the ``elastic-connector`` command."""

import sys

from elastic_connector.cli import main

sys.exit(main())
