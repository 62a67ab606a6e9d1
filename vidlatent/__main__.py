from vidlatent.cli import main

main(prog_name="vidlatent")
