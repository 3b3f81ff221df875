"""`python -m hetc.cli`: the hetc command."""

from hetc.cli import main

if __name__ == "__main__":
    main()
