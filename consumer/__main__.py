from consumer.cli import app

app(prog_name="consumer")
