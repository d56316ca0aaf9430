import sys

from gateway.cli.main import main
from gateway.runtime import leave

if __name__ == "__main__":
    code = main()
    leave()
    sys.exit(code)
