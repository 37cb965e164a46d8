build/obj/providers/secret.o: ../../providers/secret.c \
  ../../providers/secret.h ../../providers/conf.h

../../providers/secret.h:

../../providers/conf.h:
