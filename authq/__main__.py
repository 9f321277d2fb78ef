from authq.cli import main

raise SystemExit(main())
