FROM localhost/bkbase:1
CMD ["/bin/echo", "tab\there", "quote\"d", "uni\u00e9"]
