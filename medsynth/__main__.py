from medsynth.cli.main import main

raise SystemExit(main())
