# An ENTRYPOINT after CMD in the same stage resets CMD.
FROM localhost/bbase:1
CMD ["/bin/sh"]
ENTRYPOINT ["/bin/echo"]
