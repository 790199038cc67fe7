"""`python -m service` starts the todo gRPC server."""

import sys

from service.main import main

sys.exit(main())
