from visionserve.cli import main

raise SystemExit(main())
