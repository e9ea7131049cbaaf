from zdsync.cli import main

main()
