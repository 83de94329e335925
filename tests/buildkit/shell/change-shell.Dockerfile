FROM localhost/bkbase:1
SHELL ["/bin/sh", "-ec"]
RUN echo "in shell" > /s
CMD echo shell-form-cmd
ENTRYPOINT echo shell-form-entry
