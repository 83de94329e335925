FROM localhost/bkbase:1
run echo lower > /lower
env K=v
