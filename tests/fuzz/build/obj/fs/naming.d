build/obj/fs/naming.o: ../../fs/naming.c ../../fs/naming.h \
  ../../providers/buf.h

../../fs/naming.h:

../../providers/buf.h:
