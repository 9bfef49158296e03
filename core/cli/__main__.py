from unmix.cli import main

main()
