FROM localhost/bkbase:1
RUN --mount=type=bind,target=/ctx cat /ctx/a.txt > /copied
