"""The bundle's console command: `birdid` exactly as the installed package's (cli.main)."""

from birdid_app.cli import main

raise SystemExit(main())
