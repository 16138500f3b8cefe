"""Entry point for ``python -m biofound_cli`` (and ``torchrun -m biofound_cli``)."""

from biofound_cli.cli.entry import main

if __name__ == "__main__":
    main()
