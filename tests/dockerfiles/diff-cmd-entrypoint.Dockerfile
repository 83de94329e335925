# CMD and ENTRYPOINT: exec and shell forms; a later ENTRYPOINT clears CMD.
FROM localhost/bbase:1 AS shellforms
CMD ["/bin/true", "ignored"]
ENTRYPOINT echo "entry $HOME"
CMD echo cmd shell form

FROM shellforms
ENTRYPOINT ["/bin/echo", "exec entry"]
CMD ["exec", "cmd"]
