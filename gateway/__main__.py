import sys

from gateway.cli.main import main

if __name__ == "__main__":  # not when multiprocessing's spawn imports this module
    sys.exit(main())
