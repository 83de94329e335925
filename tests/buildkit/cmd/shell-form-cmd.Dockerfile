FROM localhost/bkbase:1
CMD echo "shell form $HOME"
