const express = require("express");

const app = express();
app.get("/", (req, res) => res.send("hello from strata-bench\n"));
app.listen(8080);
