# bkdiff-expect: error
FROM localhost/bkbase:1
ENV R=${UNSET:?unset}
