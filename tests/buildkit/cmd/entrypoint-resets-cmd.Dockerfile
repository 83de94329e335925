FROM localhost/bkbase:1
CMD ["base-cmd"]
ENTRYPOINT ["/bin/echo"]
