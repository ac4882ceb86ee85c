from vlmrm_cli.cli import main

main()
