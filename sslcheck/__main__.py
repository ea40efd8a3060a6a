from sslcheck.cli import main

main()
