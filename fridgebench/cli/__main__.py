from fridgebench.cli import main

main()
