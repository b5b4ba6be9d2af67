# The baseline endpoint: a constant response from a bare Flask app, served by the same gunicorn
# settings as the real one, so every throughput figure has a same-run ceiling to be compared with.
from flask import Flask

app = Flask(__name__)


@app.route("/", methods=["GET", "POST"])
def constant():
    return "ok"
