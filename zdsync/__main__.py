from zdsync.cli import main

main(prog_name="zdsync")
