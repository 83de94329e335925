FROM localhost/bkbase:1
ARG RO=false
ARG RW=True
ARG S=locked
ARG M=0700
ARG REQ=false
RUN --mount=type=cache,target=/c,sharing=$S,readonly=$RO,mode=$M,uid=${UID:-7} stat -c '%a %u' /c > /cache-mode
RUN --mount=type=bind,target=/ctx,rw=$RW touch /ctx/new && ls /ctx > /ctx-list
RUN --mount=type=secret,id=absent,required=$REQ echo no secret > /secret-optional
