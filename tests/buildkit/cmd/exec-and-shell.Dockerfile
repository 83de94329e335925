FROM localhost/bkbase:1
CMD ["/bin/echo", "hello"]
ENTRYPOINT /bin/sh -c 'exec "$@"' --
