FROM localhost/bkbase:1
RUN --mount=type=bind,target=/ctx,rw echo scratch > /ctx/new && ls /ctx > /list
