from asyncq.consumer.cli import app

app(prog_name="consumer")
