from rsnb.cli import main

raise SystemExit(main())
