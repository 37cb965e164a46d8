build/obj/providers/ratelimit.o: ../../providers/ratelimit.c \
  ../../providers/ratelimit.h

../../providers/ratelimit.h:
