# RUN in shell and exec forms, with --network=none; SHELL changes the shell form.
FROM localhost/bbase:1
RUN mkdir -p /out && echo "shell form $((1 + 2))" > /out/shell
RUN ["/bin/sh", "-c", "echo exec form > /out/exec"]
RUN ["/bin/touch", "/out/plain-exec"]
RUN --network=none ls /sys/class/net > /out/net
SHELL ["/bin/sh", "-ec"]
RUN echo "with -e" > /out/shell-e; rm -f /out/plain-exec
RUN mkdir -p /out/d/e && ln -s ../shell /out/d/link && ln /out/shell /out/d/hard
