# SHELL: changes the shell form of RUN, CMD and ENTRYPOINT; kept in the config.
FROM localhost/bbase:1
SHELL ["/bin/sh", "-xc"]
RUN echo traced > /traced 2>/dev/null
SHELL ["/bin/busybox", "sh", "-c"]
RUN echo "busybox shell" > /bb
CMD echo shell cmd
ENTRYPOINT echo shell entry
