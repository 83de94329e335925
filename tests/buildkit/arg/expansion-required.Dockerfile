FROM localhost/bkbase:1
ARG SET=v
ENV R=${SET:?unset} S=${SET?unset}
