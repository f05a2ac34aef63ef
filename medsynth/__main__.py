from medsynth.cli import main

raise SystemExit(main())
