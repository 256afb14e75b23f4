from facesearch.cli.main import main

main()
